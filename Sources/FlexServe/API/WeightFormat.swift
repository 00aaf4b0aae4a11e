import FlexServeTensor

/// Storage format of the projection weights (`DType` of the tensor layer); `nil` keeps the file's.
public typealias WeightFormat = DType
